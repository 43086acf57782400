"""Stage drivers: what ``python -m osvos_pl +experiment=<stage>`` does, returning the run record."""
