"""The Textual face (full-screen app); a thin shell over rttui.api like the CLI."""
