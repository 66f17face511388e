"""LLM Scratch Lab: the router. Builds the navigation from core.journey and draws the shared frame.

The page scripts live in ``views/``, not ``pages/``: Streamlit runs a ``pages/`` folder as a legacy multipage app
until this script has called ``st.navigation`` once, so deep links on a fresh server would skip this frame.
"""

import streamlit as st

from core.journey import PAGES
from ui.frame import sidebar_frame
from ui.state import adopt_demo_secret, keep_page_settings, limits

st.set_page_config(page_title="LLM Scratch Lab", page_icon=":material/neurology:", layout="wide")
adopt_demo_secret()  # LLMLAB_DEMO may come from st.secrets on Streamlit Community Cloud
limits().apply_torch_threads()

sections: dict[str, list] = {}
for info in PAGES:
    page = st.Page(info.path, title=info.title, icon=info.icon, default=info.path == "views/home.py")
    sections.setdefault(info.section, []).append(page)

current = st.navigation(sections)
keep_page_settings(current.url_path)  # a page's settings outlive a visit to another page
sidebar_frame()
current.run()
