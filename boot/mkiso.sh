#!/bin/sh
# Build a GRUB (BIOS) ISO that multiboots the hypervisor ELF with a kernel command line, and
# optionally a guest kernel (and its initrd) as multiboot modules.
# Usage: boot/mkiso.sh IMAGE.elf OUT.iso ["key=value ..."] [GUEST "GUEST ARGS" [INITRD]]
#   GUEST is copied to /boot/guest and loaded with `module --nounzip /boot/guest /boot/guest GUEST ARGS`,
#   INITRD to /boot/initrd with `module --nounzip /boot/initrd /boot/initrd initrd`. The hypervisor
#   reads a module string as "FILE ARGS" (QEMU's -initrd convention) and takes everything after the
#   first space as the guest's command line, while GRUB 2's `module FILE ARGS...` makes the string
#   from ARGS alone (measured with GRUB 2.06): hence the path repeated as the string's first word.
#   --nounzip: the guest gets the files' bytes as they are (GRUB would gunzip a compressed initrd), as
#   under QEMU's -initrd.
# Used by `make -C hv iso` and by hvtrace's Bochs launcher (one cached ISO per command line and guest).
set -eu
elf=$1
out=$2
cmdline=${3:-}
guest=${4:-}
guest_args=${5:-}
initrd=${6:-}
# The command lines land verbatim in grub.cfg: accept only characters that need no quoting there.
case "$cmdline" in
  *[!A-Za-z0-9_=,.:/\ -]*) echo "mkiso.sh: unsupported character in command line: $cmdline" >&2; exit 2 ;;
esac
# The guest's: the same idea (hvtrace.launch.guest.GRUB_SAFE_RE), one space between words (GRUB
# splits the line into words and joins them with single spaces).
case "$guest_args" in
  *[!A-Za-z0-9_=,.:/+@%~\ -]*) echo "mkiso.sh: unsupported character in guest command line: $guest_args" >&2; exit 2 ;;
  \ *|*\ |*\ \ *) echo "mkiso.sh: leading, trailing or repeated spaces in guest command line: '$guest_args'" >&2; exit 2 ;;
esac
if [ -z "$guest" ] && { [ -n "$guest_args" ] || [ -n "$initrd" ]; }; then
    echo "mkiso.sh: guest command line or initrd given without a guest kernel" >&2; exit 2
fi
for f in "$guest" "$initrd"; do
    if [ -n "$f" ] && [ ! -f "$f" ]; then echo "mkiso.sh: no such file: $f" >&2; exit 66; fi
done
command -v grub-mkrescue >/dev/null || { echo "mkiso.sh: grub-mkrescue not found (apt install grub-pc-bin grub-common xorriso mtools)" >&2; exit 69; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM
mkdir -p "$tmp/iso/boot/grub"
cp "$elf" "$tmp/iso/boot/hvtrace.elf"
modules=""
if [ -n "$guest" ]; then
    cp "$guest" "$tmp/iso/boot/guest"
    modules="    module --nounzip /boot/guest /boot/guest${guest_args:+ $guest_args}"
    if [ -n "$initrd" ]; then
        cp "$initrd" "$tmp/iso/boot/initrd"
        modules="$modules
    module --nounzip /boot/initrd /boot/initrd initrd"
    fi
fi
{
    printf '%s\n' "set timeout=0" "set default=0" 'menuentry "hvtrace" {' \
        "    multiboot /boot/hvtrace.elf${cmdline:+ $cmdline}"
    [ -z "$modules" ] || printf '%s\n' "$modules"
    printf '%s\n' "    boot" "}"
} > "$tmp/iso/boot/grub/grub.cfg"
# Only the BIOS platform: Bochs boots from its legacy BIOS. Only the modules this grub.cfg uses (and
# what they depend on), no locales, fonts or themes: GRUB under Bochs reaches the hypervisor in ~33 M
# instead of ~60 M emulated instructions, about 1 s sooner (issue 18 item 4, benchmarks/first_record.py).
if ! grub-mkrescue --directory=/usr/lib/grub/i386-pc --install-modules="multiboot normal iso9660 biosdisk configfile" \
        --locales= --fonts= --themes= -o "$tmp/out.iso" "$tmp/iso" >"$tmp/log" 2>&1; then
    cat "$tmp/log" >&2
    exit 1
fi
mv "$tmp/out.iso" "$out"
