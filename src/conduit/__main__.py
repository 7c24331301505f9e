from conduit.cli import app

app(prog_name="conduit")
