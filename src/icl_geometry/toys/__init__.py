"""Small models trained from scratch to isolate one mechanism each (paper A's sine fits, paper B's ICL toys)."""
