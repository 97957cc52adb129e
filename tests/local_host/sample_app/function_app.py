"""Sample FunctionApp for the local host's tests: exercises the host, holds no product logic."""
import azure.functions as func
from sample_blueprint import bp

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
app.register_functions(bp)
