#!/bin/sh
# Build a GRUB (BIOS) ISO that multiboots the hypervisor ELF with a kernel command line.
# Usage: boot/mkiso.sh IMAGE.elf OUT.iso ["key=value ..."]
# Used by `make -C hv iso` and by hvtrace's Bochs launcher (one cached ISO per command line).
set -eu
elf=$1
out=$2
cmdline=${3:-}
# The command line lands verbatim in grub.cfg: accept only characters that need no quoting there.
case "$cmdline" in
  *[!A-Za-z0-9_=,.:/\ -]*) echo "mkiso.sh: unsupported character in command line: $cmdline" >&2; exit 2 ;;
esac
command -v grub-mkrescue >/dev/null || { echo "mkiso.sh: grub-mkrescue not found (apt install grub-pc-bin grub-common xorriso mtools)" >&2; exit 69; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM
mkdir -p "$tmp/iso/boot/grub"
cp "$elf" "$tmp/iso/boot/hvtrace.elf"
cat > "$tmp/iso/boot/grub/grub.cfg" <<CFG
set timeout=0
set default=0
menuentry "hvtrace" {
    multiboot /boot/hvtrace.elf $cmdline
    boot
}
CFG
# Only the BIOS platform: Bochs boots from its legacy BIOS.
if ! grub-mkrescue --directory=/usr/lib/grub/i386-pc -o "$tmp/out.iso" "$tmp/iso" >"$tmp/log" 2>&1; then
    cat "$tmp/log" >&2
    exit 1
fi
mv "$tmp/out.iso" "$out"
