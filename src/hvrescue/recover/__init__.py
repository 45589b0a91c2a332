"""Recovery on copies: every command here writes only new files and leaves its inputs as they
were (merge, reparent, replay-log, repair, salvage)."""
