"""The floor of the latency benchmark: a bare FastAPI route, served by the same uvicorn
configuration as the API, measured under the same load in the same run.

    python -m bench.bare --port 8391
"""

from __future__ import annotations

import argparse

import uvicorn
from fastapi import FastAPI

__all__ = ["app"]

app = FastAPI()


@app.get("/bare")
async def bare() -> dict[str, int]:
    return {"ok": 1}


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", loop="uvloop",
                http="httptools", access_log=False)
