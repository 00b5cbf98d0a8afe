"""The EvoFormer GUI: a Streamlit app (``evoformer ui``) over run folders and the evolve / compress flows.

- :mod:`ui.runs` reads run folders (state, leaderboard, Pareto data, code, diffs, compression tables);
- :mod:`ui.launch` starts runs (local child processes or Prefect deployments) and holds the API key
  only in memory and in the child's environment;
- ``ui/app.py`` is the Streamlit page.
"""
