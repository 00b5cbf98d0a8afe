"""Candidate programs: the contract, static checks, and honest training through the sandbox."""
