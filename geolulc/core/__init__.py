"""What every layer shares and that depends on none of them: the grid, the classes, the device."""
