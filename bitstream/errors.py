class FczError(ValueError):
    """Anything wrong with a .fcz file or a codec input; the message is meant for the user."""
