#!/bin/sh
# PID 1 of the tinyvm guest: mount, load the vfio + virtio modules (order from the host's
# modprobe --show-depends), run the test binary, print the exit marker, power off.
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
for m in $(cat /modules/modules.order); do
  insmod "/modules/$m" 2>/dev/null || echo "tinyvm-init: insmod $m failed"
done
sleep 0.2
/bin/tinyvm-guest $(cat /etc/guest-args)
echo "TINYVM-EXIT rc=$?"
poweroff -f
