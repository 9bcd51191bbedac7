"""The platform templates rendered for clients and executed in the platforms' stand-ins."""
