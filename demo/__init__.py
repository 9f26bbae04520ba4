"""The faces of SciCoT Studio: the `scicot` command and the Gradio app, wiring the method
(`scicot_core`) to the annotation store (`annotations`)."""
