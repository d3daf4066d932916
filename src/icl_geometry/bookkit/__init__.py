"""The book machinery: claims and their records, recorded runs, the report, chapter specs and profiles, the runner
and CLI, the course kit, plotting and widgets. The only layer that imports `experiments`."""
