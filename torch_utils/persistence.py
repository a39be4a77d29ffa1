"""Placeholder: replaced by the persistence/legacy work (keeps the decorator importable)."""


def persistent_class(cls):
    return cls
