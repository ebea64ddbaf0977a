"""Commands next to the run: coverage, maintenance, the lake report (``okta-personal-lake SUBCOMMAND``)."""
