. /lib/loom-guest.sh
nfs_params
nfs_mount nfs4 "$OPTS" "$A:$EXP" /mnt/x || fail "mount"
echo hello > /mnt/x/h1file || fail write
out=$(host_do mark start); echo "mark rc=$? out=$out"
out=$(host_do kill-ds 1); echo "kill rc=$? out=$out"
out=$(host_do kill-ds 1); echo "kill again rc=$? out=$out"
out=$(host_do start-ds 1); echo "start rc=$? out=$out"
out=$(host_do admin ds list); echo "admin rc=$? out=$out"
out=$(host_do bogus x y); echo "bogus rc=$? out=$out"
host_must mark end
echo "HOSTCHECK ds nfs3.CREATE calls >= 1"
echo "HOSTCHECK mds nfs4.COMPOUND calls > 0"
echo "HOSTCHECK ds-bytes-written >= 6"
echo "HOSTCHECK ds-copies $(sha256sum </mnt/x/h1file | cut -d' ' -f1) >= 1"
echo "SUM $(sha256sum </mnt/x/h1file | cut -d' ' -f1) h1file"
umount /mnt/x
