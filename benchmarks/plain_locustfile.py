"""The locustfile's user behaviour without the harness's listeners: the plain-CLI baseline."""
import uuid

from locust import FastHttpUser, constant, task


class PipelineUser(FastHttpUser):
    wait_time = constant(0)

    def on_start(self):
        self.created = []

    @task(3)
    def create_pipeline(self):
        with self.client.post("/api/v1/pipeline", json={"name": "load", "client": uuid.uuid4().hex[:8]},
                              name="POST /api/v1/pipeline", catch_response=True) as resp:
            if resp.status_code in (200, 201):
                self.created.append(resp.json()["id"])
                del self.created[:-50]
                resp.success()
            else:
                resp.failure(f"HTTP {resp.status_code}")

    @task(1)
    def read_pipeline(self):
        if self.created:
            self.client.get(f"/api/v1/pipeline/{self.created[-1]}", name="GET /api/v1/pipeline/{id}")
