# The layers of src/ as a rule (issue #13): tests/layering.sh reads every #include of
# src/ and fs/; no build, no mount.
TESTS += tests/layering.sh
EXTRA_DIST += tests/layering.sh
