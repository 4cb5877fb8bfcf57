"""Publishing into a real evbusd: fire-and-forget and acknowledged ingress,
the file plugin's output, the egress re-publication, subscriptions and
filters."""

import msgpack
import zmq

import evbtest
from evbtest import envelope, wait_for


class IngestTest(evbtest.TestCase):
    def test_fire_and_forget_events_reach_the_file_and_the_egress(self):
        b = self.make_broker().start()
        sub = b.subscriber()
        pub = b.publisher()
        # the egress subscription may take a moment to arrive: publish a
        # warm-up event until the subscriber sees one
        def warm():
            pub.send_multipart([b"warm.up", envelope("warm.up")])  # a new id each time
            return sub.poll(100)
        wait_for(warm, what="egress subscription")
        while sub.poll(200):
            sub.recv_multipart()
        for i in range(3):
            pub.send_multipart(
                [b"task.completed",
                 envelope("task.completed", data={"task_id": "T-%d" % i, "duration_ms": 10 * i})]
            )
        got = []
        while len(got) < 3 and sub.poll(5000):
            got.append(sub.recv_multipart())
        self.assertEqual(len(got), 3)
        for type_, env in got:
            self.assertEqual(type_, b"task.completed")
            e = msgpack.unpackb(env, raw=False)
            self.assertEqual(len(e["id"]), 36)       # filled in: UUIDv7
            self.assertEqual(e["specversion"], "1.0")
            self.assertTrue(e["time"].endswith("Z"))
        lines = wait_for(
            lambda: [l for l in b.output() if l["type"] == "task.completed"] if len(
                [l for l in b.output() if l["type"] == "task.completed"]) == 3 else None,
            what="3 lines in the file")
        self.assertEqual([l["data"]["task_id"] for l in lines], ["T-0", "T-1", "T-2"])
        self.assertEqual([l["data"]["duration_ms"] for l in lines], [0, 10, 20])
        # the file and the egress carry the same ids
        self.assertEqual(sorted(l["id"] for l in lines),
                         sorted(msgpack.unpackb(e, raw=False)["id"] for _, e in got))
        pub.close()
        sub.close()
        self.assertEqual(b.stop(), 0)

    def test_acknowledged_event_is_accepted_with_its_id_and_written(self):
        b = self.make_broker().start()
        reply = b.ack_publish([b"task.failed", envelope(
            "task.failed", id="evt-42", project="alpha",
            data={"task_id": "T-9", "error": "boom", "exit_code": 2})])
        self.assertEqual(reply, ["ACCEPTED", "evt-42"])
        lines = wait_for(lambda: b.output(), what="the event in the file")
        self.assertEqual(lines[0]["id"], "evt-42")
        self.assertEqual(lines[0]["project"], "alpha")
        self.assertEqual(lines[0]["data"], {"task_id": "T-9", "error": "boom", "exit_code": 2})
        # an id the publisher left out is filled in and returned
        reply = b.ack_publish([b"agent.stuck", envelope("agent.stuck")])
        self.assertEqual(reply[0], "ACCEPTED")
        self.assertEqual(len(reply[1]), 36)
        wait_for(lambda: any(l["id"] == reply[1] for l in b.output()),
                 what="the generated id in the file")

    def test_req_socket_gets_replies_through_the_delimiter(self):
        b = self.make_broker().start()
        req = b.ctx.socket(zmq.REQ)
        req.setsockopt(zmq.LINGER, 0)
        req.connect(b.ack)
        req.send_multipart([b"budget.warning", envelope("budget.warning", id="r1")])
        self.assertTrue(req.poll(5000))
        self.assertEqual(req.recv_multipart(), [b"ACCEPTED", b"r1"])
        req.close()

    def test_pipelined_dealer_gets_replies_in_order(self):
        b = self.make_broker().start()
        d = b.dealer()
        for i in range(200):
            d.send_multipart([b"task.completed", envelope("task.completed", id="p-%d" % i)])
        ids = []
        while len(ids) < 200 and d.poll(5000):
            status, id_ = d.recv_multipart()[:2]
            self.assertEqual(status, b"ACCEPTED")
            ids.append(id_.decode())
        self.assertEqual(ids, ["p-%d" % i for i in range(200)])
        d.close()

    def test_topics_and_filters_route_only_matching_events(self):
        b = self.make_broker(instances=lambda b: ",\n".join([
            b.file_instance("failures", ["task.failed"]),
            b.file_instance("alpha", ["**"], filter_={"project": "alpha"}),
            b.file_instance("steps", ["workflow.*.completed"]),
            b.file_instance("tasks", ["task.**"]),
        ]))
        b.start()
        sends = [
            ("task.failed", {"id": "1", "project": "alpha"}),
            ("task.failed", {"id": "2", "project": "beta"}),
            ("task.completed", {"id": "3", "project": "alpha"}),
            ("workflow.step.completed", {"id": "4"}),
            ("workflow.step.sub.completed", {"id": "5"}),
            ("agent.stuck", {"id": "6", "project": "alpha"}),
            ("task.step.failed", {"id": "7"}),
        ]
        for t, attrs in sends:
            self.assertEqual(b.ack_publish([t.encode(), envelope(t, **attrs)])[0], "ACCEPTED")
        b.stop()
        ids = lambda name: [l["id"] for l in b.output(name)]
        self.assertEqual(ids("failures"), ["1", "2"])
        self.assertEqual(ids("alpha"), ["1", "3", "6"])
        self.assertEqual(ids("steps"), ["4"])
        self.assertEqual(ids("tasks"), ["1", "2", "3", "7"])

    def test_egress_subscription_by_type_prefix(self):
        b = self.make_broker().start()
        sub = b.subscriber(b"task.")
        def warm():
            b.ack_publish([b"task.warm", envelope("task.warm")])
            return sub.poll(100)
        wait_for(warm, what="egress subscription")
        while sub.poll(200):
            sub.recv_multipart()
        for t in ["agent.stuck", "task.failed", "budget.warning", "task.completed"]:
            b.ack_publish([t.encode(), envelope(t)])
        got = []
        while sub.poll(500):
            got.append(sub.recv_multipart()[0])
        self.assertEqual(got, [b"task.failed", b"task.completed"])
        sub.close()

    def test_egress_keeps_serving_a_subscriber_when_another_with_its_prefix_leaves(self):
        # the broker skips events no one subscribed to; it must count
        # subscribers per prefix, not just prefixes
        b = self.make_broker().start()
        a = b.subscriber(b"task.")
        c = b.subscriber(b"task.")
        def warm(sock):
            def f():
                b.ack_publish([b"task.warm", envelope("task.warm")])
                return sock.poll(100)
            return f
        wait_for(warm(a), what="subscriber a")
        wait_for(warm(c), what="subscriber c")
        a.close()      # its unsubscription reaches the broker
        time_limit = 50
        got = []
        for i in range(time_limit):
            b.ack_publish([b"task.failed", envelope("task.failed", id="k%d" % i)])
        while c.poll(500):
            t, env = c.recv_multipart()
            if t == b"task.failed":
                got.append(msgpack.unpackb(env, raw=False)["id"])
        self.assertEqual(got, ["k%d" % i for i in range(time_limit)])
        # and a late subscriber to another prefix is served once it is known
        d = b.subscriber(b"agent.")
        def warm_agent():
            b.ack_publish([b"agent.stuck", envelope("agent.stuck")])  # new id each time
            return d.poll(100)
        wait_for(warm_agent, what="the agent. subscription")
        self.assertEqual(d.recv_multipart()[0], b"agent.stuck")
        c.close()
        d.close()


if __name__ == "__main__":
    evbtest.main()
