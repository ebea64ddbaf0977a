"""Where events come from, each turned into ``RawBatch`` elements."""
