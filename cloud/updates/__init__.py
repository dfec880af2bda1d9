"""Gateway software updates (docs/updates.md): the signed release channel (a TUF repository), staged rollout, and
what each gateway reports of its updates."""
