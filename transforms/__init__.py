"""Pure building blocks: decode, select and flatten LogEvents, one batch per element."""
