"""SciCoT Studio as a Gradio app (and a Hugging Face Space): builds the real dependencies once
and the UI around them. `python app.py` serves it on 127.0.0.1:7860, or where Gradio's
GRADIO_SERVER_NAME and GRADIO_SERVER_PORT say."""

import threading

from demo.deps import DEFAULT_SET, build_deps
from demo.ui import build_demo, launch_options
from scicot_core.settings import Settings

settings = Settings.from_env()
deps = build_deps(settings)
# Load the model and adapters (and merge the default student's) in the background: the first
# page is served at once, the first ask finds them ready.
threading.Thread(target=deps.students.warm, args=(DEFAULT_SET if settings.merge else None,), daemon=True).start()
demo = build_demo(deps)
demo.queue(default_concurrency_limit=8)

if __name__ == "__main__":
    # Host and port are Gradio's own GRADIO_SERVER_NAME and GRADIO_SERVER_PORT (127.0.0.1 and
    # 7860 by default); a Space must listen on every interface whatever they say.
    demo.launch(server_name="0.0.0.0" if settings.on_space else None, **launch_options(settings))
