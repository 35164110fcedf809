#!/bin/bash
# The POSIX, persistence, concurrency and model tests again, with the daemon keeping
# at most 4 descriptors for idle inodes and the backing descriptors of at most 2
# unused open files (-o idle_fds=4,open_fds=2): nodes and open files are parked and
# reopened from their file handles all the time, as they are in a store of many
# thousands of files, or with thousands of files open.
set -u
: "${VMB_SRCDIR:?}"
export VMB_TEST_MOUNT_OPTS=idle_fds=4,open_fds=2
export VMB_MODEL_OPS=${VMB_MODEL_OPS:-4000}
rc=0
for t in mount-posix.sh mount-persist.sh mount-concurrent.sh model.sh lock-posix.sh; do
    echo "# ---- $t with -o $VMB_TEST_MOUNT_OPTS"
    bash "$VMB_SRCDIR/tests/$t"
    r=$?
    echo "# ---- $t: exit $r"
    if [ $r -eq 77 ]; then
        continue
    elif [ $r -ne 0 ]; then
        rc=1
    fi
done
exit $rc
