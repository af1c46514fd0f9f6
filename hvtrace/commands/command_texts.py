"""What each subcommand's --help says about it: its line in `hvtrace --help` and the description at the top
of its own help. One table, beside the exit codes (:mod:`hvtrace.commands.exit_tables`), so the commands are
worded together; :func:`hvtrace.commands.parser.add_command` reads both by the command's name."""

from __future__ import annotations

#: The line of each command in the command list of `hvtrace --help`.
SUMMARIES: dict[str, str] = {
    "run": "boot the hypervisor under an emulator and report its status",
    "doctor": "check this host: emulators, KVM, gdb, toolchain; say what to install",
    "capture": "capture exit records to a trace file (attach to a run, or start one)",
    "report": "per-reason / per-CPU statistics of a trace file: counts, rates, handling times",
    "export": "export a trace file to Perfetto (protobuf or JSON), CSV or a Parquet dataset",
    "query": "SQL over trace files (DuckDB): SELECT ... FROM exits",
    "gdb": "gdb with the hypervisor's symbols and the hv-* commands (live gdbstub or core file)",
    "core-from-dump": "wrap raw RAM dump files (PREFIX.<hex start>) as an ELF core for gdb",
    "tui": "live per-CPU exits in a terminal UI (attach, start a session, or replay a trace file)",
    "top": "exits per CPU and per reason, kvm_stat style, as text (attach or start a session)",
    "image": "write the bootable GRUB ISO (hypervisor, command line, guest) for a USB stick, CD or PXE",
}

#: The description under each command's usage line (core-from-dump has none). ``{perfetto_json_max}``:
#: filled in from :data:`hvtrace.trace.export_formats.PERFETTO_JSON_MAX` by the export command.
DESCRIPTIONS: dict[str, str] = {
    "run": "Build the image if needed, boot it, stream its console, exit with its status.",
    "doctor": (
        "Check what this host can run: QEMU and its accelerators, KVM's nested VT-x/SVM, "
        "Bochs and its VMX model, gdb and its Python, the toolchain that builds hv/. Ends with which "
        "back ends `hvtrace run` can use here and the apt-get line for the others."
    ),
    "capture": (
        "Attach to a running `hvtrace run` (--ram PATH, printed as 'hvtrace: ram file PATH') "
        "or boot one (--backend), and write its exit records to a trace file."
    ),
    "report": (
        "Per exit reason and per CPU: count, %, rate, time % (share of the handling time) "
        "and min/avg/max/p99 handling time, then drill-downs. Streams the file in bounded memory; "
        "a chunk it selects whole (no --since/--until bound inside it) is merged from the chunk's "
        "summary (files of format 3), with no record decoded: --no-summaries decodes every chunk "
        "instead, for the same report."
    ),
    "export": (
        "perfetto: the protobuf trace (per-CPU exit slices lasting their handling time, "
        "exits/s counters, loss markers) above {perfetto_json_max} records, Chrome trace JSON below "
        "(perfetto-proto / perfetto-json choose one); csv: the columns of `hvtrace query`; parquet: a "
        "Hive-partitioned dataset directory (cpu=N/, and capture=NAME/ when several files are given) "
        "that DuckDB, Polars, Spark and Trino read as it is."
    ),
    "query": (
        "Run one SQL statement (DuckDB) over one or many trace files, as the table `exits`: "
        "every record field (seq, tsc, cpu, kind, flags, reason, insn_len, qual, rip, gpa, arg0, arg1, "
        "tsc_resume, cr3), reason_name and kind_name (as report names them), handling_ticks "
        "(tsc_resume - tsc, NULL when unknown), handling_s and t_s (seconds since the capture's first "
        "TSC; NULL when the TSC rate is unknown) and file (which trace). See the README for examples."
    ),
    "gdb": (
        "Start gdb on hv/build/hvtrace.elf with the hv-* commands loaded (help hv), "
        "connected to a running session's gdbstub (--port, printed by `hvtrace run` as 'hvtrace: gdb "
        "port N'; or --ram PATH of that session) or a post-mortem core (--core FILE, --dump PREFIX)."
    ),
    "tui": (
        "Textual UI over a session's exit records: attach to a running `hvtrace run` "
        "(--ram PATH), start one (the default; --backend/--cpus/--memory/--guest/--initrd/--append/"
        "--hv-append/--cpu-model/--qemu-arg as for run) or "
        "replay a trace file (--replay FILE). Press ? in the UI for its keys."
    ),
    "top": (
        "Count a session's exits per CPU and per reason over each interval and print them "
        "sorted, busiest first: attach to a running `hvtrace run` (--ram PATH, a passive reader that "
        "never disturbs a capture) or start one (the default; options as for run). Redraws every "
        "interval on a terminal until Ctrl-C; --once prints one interval and exits; --log prints one "
        "line per interval (time, total, per CPU, per reason)."
    ),
    "image": (
        "Write the BIOS-bootable GRUB ISO that the Bochs back end boots: the hypervisor image "
        "(built first when stale), its command line and, with --guest, the guest kernel and initrd as "
        "multiboot modules. dd it to a USB stick or boot it over PXE (see the README's 'Real hardware'). "
        "The hypervisor's console and status line go to COM2 at 115200 baud unless --serial names "
        "another UART."
    ),
}
