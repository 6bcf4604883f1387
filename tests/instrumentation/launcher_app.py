"""A Flask app with no OpenTelemetry code, run under opentelemetry-instrument.

``LAUNCHER_APP_FRAMEWORK`` picks the models it trains at start-up on
scikit-learn's breast cancer data set: ``sklearn``, ``xgboost``,
``lightgbm`` or ``onnxruntime``. Run it as ``python launcher_app.py`` (the
port comes from ``LAUNCHER_APP_PORT``) or as ``launcher_app:app`` under
gunicorn. Every route replies with the worker's process id.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import os
from typing import Any

import numpy as np
from flask import Flask, jsonify, request
from sklearn.datasets import load_breast_cancer

FRAMEWORK = os.environ.get("LAUNCHER_APP_FRAMEWORK", "sklearn")


def _train_sklearn(x: Any, y: Any) -> dict[str, Any]:
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    # Defined after the launcher started, so the sklearn instrumentor has
    # to catch the class as it is created.
    class ShrunkForest(RandomForestClassifier):
        def predict_proba(self, X: Any) -> Any:  # noqa: N803 (sklearn's name)
            shrunk = super().predict_proba(X) * 0.9
            return shrunk + 0.1 / shrunk.shape[1]

    return {
        "pipeline": make_pipeline(
            StandardScaler(), LogisticRegression(max_iter=1000)
        ).fit(x, y),
        "subclass": ShrunkForest(n_estimators=10, random_state=0).fit(x, y),
        "svc": SVC().fit(x, y),
    }


def _train_xgboost(x: Any, y: Any) -> dict[str, Any]:
    import xgboost

    return {
        "xgb": xgboost.XGBClassifier(n_estimators=20, max_depth=3).fit(x, y)
    }


def _train_lightgbm(x: Any, y: Any) -> dict[str, Any]:
    import lightgbm

    return {
        "lgbm": lightgbm.LGBMClassifier(n_estimators=20, verbose=-1).fit(x, y)
    }


def _train_onnxruntime(x: Any, y: Any) -> dict[str, Any]:
    import onnxruntime
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    pipeline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    graph = to_onnx(pipeline.fit(x, y), x[:1].astype(np.float32))
    session = onnxruntime.InferenceSession(
        graph.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    return {"onnx": session}


_TRAINERS = {
    "sklearn": _train_sklearn,
    "xgboost": _train_xgboost,
    "lightgbm": _train_lightgbm,
    "onnxruntime": _train_onnxruntime,
}

_x, _y = load_breast_cancer(return_X_y=True)
MODELS = _TRAINERS[FRAMEWORK](_x, _y)
app = Flask(__name__)
_executor = concurrent.futures.ThreadPoolExecutor(max_workers=2)


def _predict(name: str, rows: Any) -> list[Any]:
    model = MODELS[name]
    if FRAMEWORK == "onnxruntime":
        feed = {model.get_inputs()[0].name: rows.astype(np.float32)}
        return [str(label) for label in model.run(None, feed)[0]]
    if name == "svc":
        return [int(label) for label in model.predict(rows)]
    probabilities = model.predict_proba(rows)
    return [int(label) for label in probabilities.argmax(axis=1)]


def _rows() -> Any:
    return np.asarray(request.get_json()["rows"], dtype=np.float64)


@app.post("/predict/<name>")
def predict(name: str) -> Any:
    return jsonify(labels=_predict(name, _rows()), pid=os.getpid())


@app.post("/thread/<name>")
def predict_in_thread(name: str) -> Any:
    # The copied context carries the server span into the worker thread.
    context = contextvars.copy_context()
    future = _executor.submit(context.run, _predict, name, _rows())
    return jsonify(labels=future.result(), pid=os.getpid())


@app.post("/async/<name>")
def predict_in_task(name: str) -> Any:
    rows = _rows()

    async def run() -> list[Any]:
        task = asyncio.create_task(asyncio.to_thread(_predict, name, rows))
        return await task

    return jsonify(labels=asyncio.run(run()), pid=os.getpid())


@app.get("/probe")
def probe() -> Any:
    svc = MODELS.get("svc")
    return jsonify(
        pid=os.getpid(),
        svc_has_predict_proba=svc is not None and hasattr(svc, "predict_proba"),
    )


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(os.environ["LAUNCHER_APP_PORT"]))
