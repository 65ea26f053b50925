from .render import register_cli as _render
REGISTER = [_render]
