# contrib/: set-up and demo scripts, mount helper, systemd unit, shell completion,
# and the CI entry point. Distributed only; nothing here is built or installed.
EXTRA_DIST += \
	.ci/run \
	contrib/setup.sh \
	contrib/demo.sh \
	contrib/mount.vmbundlefs \
	contrib/vmbundlefs@.service \
	contrib/bash-completion/vmbundlefs
