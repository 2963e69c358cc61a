"""(being written)"""

from flask import Blueprint

bp = Blueprint("admin_people", __name__, url_prefix="/admin")
