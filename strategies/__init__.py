"""The reasoning programs, as step plugins, and the library of response strategies."""
