"""Entries of mmtinyvim in other tools' indexes (each needs its tool
installed; the package root calls them only then)."""
