"""Model assets and the LLM / embedding servers GenSim starts for a run."""
