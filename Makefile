# The two commands of the README: `make demo` (set-up plus the main job) and `make test`.
.PHONY: demo test setup setup-test

setup:
	scripts/bootstrap.sh

setup-test:
	scripts/bootstrap.sh --test

demo: setup
	.venv/bin/kronos-registry predict kronos-demo --input kronos_registry/data/spx_daily.csv \
		--pred-len 24 --output out.csv --plot out.png

test: setup-test
	.venv/bin/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)
