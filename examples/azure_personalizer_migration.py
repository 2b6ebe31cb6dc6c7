"""Moving from Azure Personalizer: Azure's own SDK, unchanged but for the URL and key.

Run it with ``python examples/azure_personalizer_migration.py`` (needs the
test extras: ``pip install -e '.[test]'`` installs ``azure-ai-personalizer``).

It starts ``banditkit serve`` on a free loopback port with an admin and a
client key, then makes the calls a Personalizer client makes: read and change
the loop settings and the policy (the administration client), rank, activate
and reward (the client), and prints what came back.
"""

from __future__ import annotations

from _local import joined_lines, local_server
from azure.ai.personalizer import PersonalizerAdministrationClient, PersonalizerClient
from azure.core.credentials import AzureKeyCredential

CONTEXT = [{"Member": {"country": "BR", "device": "tv"}}, {"hour": 21}]
ACTIONS = [
    {"id": "romance-poster", "features": [{"Artwork": {"theme": "romance", "faces": 2}}]},
    {"id": "action-poster", "features": [{"Artwork": {"theme": "action", "faces": 1}}]},
    {"id": "comedy-poster", "features": [{"Artwork": {"theme": "comedy", "faces": 0}}]},
]

with local_server("admin", "client") as server:
    # The only change from Azure: the endpoint and the key (a banditkit key).
    admin = PersonalizerAdministrationClient(server.url, AzureKeyCredential(server.keys["admin"]))
    client = PersonalizerClient(server.url, AzureKeyCredential(server.keys["client"]))

    # Loop settings: Personalizer's service configuration, ISO 8601 durations included.
    configuration = admin.get_service_configuration()
    configuration.update(rewardWaitTime="PT1S", explorationPercentage=0.2)
    configuration = admin.update_service_configuration(configuration)
    print("reward wait:", configuration["rewardWaitTime"],
          "exploration:", configuration["explorationPercentage"])

    # The policy: a name and Vowpal Wabbit arguments (the learner is VW, as in Azure).
    policy = admin.update_policy({"name": "softmax", "arguments":
                                  "--cb_explore_adf --softmax --lambda 10 -q MA"})
    print("policy:", admin.get_policy()["name"], "|", policy["arguments"])

    # Rank, then report what happened: the calls of a Personalizer client.
    takes = 0
    for i in range(20):
        response = client.rank({"contextFeatures": CONTEXT, "actions": ACTIONS,
                                "eventId": f"page-{i}", "deferActivation": True})
        if i == 0:
            print("ranking:", [(item["id"], item["probability"]) for item in response["ranking"]])
        client.activate(response["eventId"])  # the member saw it
        value = 1.0 if response["rewardActionId"] == "comedy-poster" else 0.0
        client.reward(response["eventId"], {"value": value})
        takes += value == 1.0
    print(f"20 ranks, activations and rewards accepted ({takes} plays)")

    # After the reward wait, the learner joins the events into the dsjson log.
    joined = joined_lines(server.data_dir / "logs", 20)
    print(f"events joined into the decision log: {joined}")
