"""What each ``+experiment=`` does: its ``prepare`` builds and checks everything from the config
(``assembly``), its job runs with those objects and returns the run record's body."""
