"""Exported System Log files: byte ranges, line batches, the decode processes, the Beam reader."""
