"""The registered focal-loss implementations: one module each, each ending in one ``@register`` decorator.

This folder is installed as ``focalbench.implementations``; every module in it is imported when the registry is first
used, so a new file here is registered, checked by the whole suite and timed without editing anything else.
"""
