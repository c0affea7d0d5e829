"""Change between dates.

Spectral change, the combined change probability, the `change` job and its evaluation on OSCD.
"""
