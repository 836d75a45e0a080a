"""Agents for eas_gym: baselines and search algorithms that run on EASEnv."""
