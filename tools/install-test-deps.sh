#!/usr/bin/env bash
# Install everything the tests need: the package with its test extras, and Debian's qemu-utils
# (qemu-img is an independent oracle for the disk tests).
set -euo pipefail
cd "$(dirname "$0")/.."
# qemu-utils: qemu-img, an oracle for disk content. ntfs-3g, dosfstools, mtools, fdisk: build the
# NTFS/FAT guest disks of the filesystem tests. gddrescue: ddrescuelog reads salvage's maps.
# fuse3: fusermount for the mount test. chromium + a Japanese font: the report screenshot test.
# e2fsprogs, xfsprogs, btrfs-progs, lvm2: build the Linux guest volumes of the ext/XFS/LVM tests.
# systemd-journal-remote (with journalctl): writes and reads the journal files of the journal tests.
PACKAGES="qemu-utils ntfs-3g dosfstools mtools fdisk gddrescue fuse3 libfuse2 chromium fonts-ipafont-gothic e2fsprogs xfsprogs btrfs-progs lvm2 systemd-journal-remote"
missing=""
for tool in qemu-img mkntfs mkfs.fat mcopy sfdisk ddrescuelog fusermount3 chromium mkfs.ext4 debugfs mkfs.xfs mkfs.btrfs pvcreate /lib/systemd/systemd-journal-remote; do
  command -v "$tool" >/dev/null 2>&1 || missing="$missing $tool"
done
if [ -n "$missing" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $PACKAGES >/dev/null
  else
    echo "missing:$missing; install Debian's $PACKAGES for the oracle and filesystem tests" >&2
  fi
fi
python3 -m pip install -q -e '.[test]'
