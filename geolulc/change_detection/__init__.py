"""Change between dates: spectral change, the combined change probability, the `change` job
and its evaluation on OSCD."""
