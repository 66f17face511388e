"""Streamlit helpers shared by the pages: caches, session state, widgets and plotly figure builders."""
