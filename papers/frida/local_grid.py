"""A Flower `Grid` that delivers messages to a ClientApp in this process, one node after another.

It is the transport of the in-process runtime used by the experiment grid: the ServerApp's strategy
and the ClientApp are the very objects the simulation and deployment runtimes run, only the hop
through Ray actors or gRPC is gone (on 2 cores those hops cost more than the training). Each node
keeps its own Context across rounds, as a SuperNode does, and a ClientApp that raises becomes an
error reply, as it does under Flower's runtimes. A client that drops out (client_app.DropReply)
sends nothing, as a dead or timed-out node: the server sees fewer replies than it sent messages.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterable
from uuid import uuid4

from flwr.app import Context, Error, Message, RecordDict
from flwr.clientapp import ClientApp
from flwr.common.constant import SUPERLINK_NODE_ID, ErrorCode
from flwr.serverapp import Grid
from flwr.supercore.run import Run
from flwr.supercore.task_identity import TaskIdentity

log = logging.getLogger(__name__)


class InProcessGrid(Grid):
    def __init__(
        self, client_app: ClientApp, num_nodes: int, run_config: dict | None = None, run_id: int = 1
    ):
        self.client_app = client_app
        self._run = Run.create_empty(run_id)
        # node ids are arbitrary to the server, as they are under a SuperLink; partition ids are not
        self.contexts = {
            1000 + pid: Context(
                run_id=run_id,
                node_id=1000 + pid,
                node_config={"partition-id": pid, "num-partitions": num_nodes},
                state=RecordDict(),
                run_config=dict(run_config or {}),
            )
            for pid in range(num_nodes)
        }
        self._replies: dict[str, Message] = {}
        # the server side of this process, as a SuperLink would register its ServerApp task
        TaskIdentity.task_id, TaskIdentity.run_id, TaskIdentity.node_id = 1, run_id, SUPERLINK_NODE_ID

    def set_run(self, run: Run) -> None:
        self._run = run

    @property
    def run(self) -> Run:
        return self._run

    def create_message(
        self,
        content: RecordDict,
        message_type: str,
        dst_node_id: int,
        group_id: str,
        ttl: float | None = None,
    ) -> Message:
        return Message(content, dst_node_id, message_type, ttl=ttl, group_id=group_id)

    def get_node_ids(self) -> Iterable[int]:
        return list(self.contexts)

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        ids = []
        for msg in messages:
            msg.metadata.__dict__["_message_id"] = str(uuid4())
            reply = self._deliver(msg)
            if reply is not None:
                self._replies[msg.metadata.message_id] = reply
            ids.append(msg.metadata.message_id)
        return ids

    def _deliver(self, msg: Message) -> Message | None:
        from papers.frida.client_app import DropReply

        context = self.contexts[msg.metadata.dst_node_id]
        try:
            return self.client_app(msg, context)
        except DropReply:
            log.debug("node %d dropped out", context.node_id)
            return None
        except Exception as err:  # noqa: BLE001 - a failing ClientApp is a reply, as under Flower
            log.debug("node %d raised:\n%s", context.node_id, traceback.format_exc())
            return Message(
                Error(code=ErrorCode.CLIENT_APP_RAISED_EXCEPTION, reason=f"{type(err).__name__}: {err}"),
                reply_to=msg,
            )

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        return [self._replies.pop(i) for i in message_ids if i in self._replies]

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> Iterable[Message]:
        return self.pull_messages(self.push_messages(messages))
