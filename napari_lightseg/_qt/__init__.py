"""Qt widgets: the only place the plugin imports Qt. Each widget is a thin view over pure code."""
