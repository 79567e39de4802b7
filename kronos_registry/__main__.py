"""`python -m kronos_registry`: the same command line as `kronos-registry`."""

from kronos_registry.cli import main

if __name__ == "__main__":
    main(prog_name="python -m kronos_registry")
