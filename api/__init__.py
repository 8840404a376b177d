"""The thin HTTP layer: app factory, dependencies, routers and one error table.

Routers validate parameters and call ``store``/``placespend``; they hold no domain logic.
"""
