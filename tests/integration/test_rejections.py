"""Bad input against a real evbusd: every refusal has its code and reason,
is counted and logged at a bounded rate, and the broker keeps serving."""

import random

import msgpack

import evbtest
from evbtest import envelope, wait_for


def deep(n):
    v = None
    for _ in range(n):
        v = [v]
    return v


class RejectionTest(evbtest.TestCase):
    def broker(self):
        # a small max_message_size so too_large is cheap to provoke
        return self.make_broker(ingress='max_message_size = "64K";').start()

    def test_each_invalid_event_gets_its_reason_code(self):
        b = self.broker()
        cases = [
            ("bad_frames", [b"task.failed"]),
            ("bad_frames", [b"task.failed", envelope("task.failed"), b"extra"]),
            ("malformed", [b"task.failed", b"\xc1\x00"]),
            ("malformed", [b"task.failed", envelope("task.failed")[:-3]]),
            ("not_a_map", [b"task.failed", msgpack.packb(["task.failed"])]),
            ("missing_type", [b"task.failed", msgpack.packb({"source": "x"})]),
            ("bad_type", [b"Task.Failed", msgpack.packb({"type": "Task.Failed"})]),
            ("bad_type", [b"task.failed", envelope("task.completed")]),
            ("bad_utf8", [b"task.failed",
                          msgpack.packb({"type": "task.failed", "subject": b"\xff\xfe"},
                                        use_bin_type=False)]),
            ("too_deep", [b"task.failed", envelope("task.failed", data=deep(40))]),
            ("bad_attribute", [b"task.failed", envelope("task.failed", time="yesterday")]),
            ("bad_attribute", [b"task.failed", envelope("task.failed", Bad_Name="x")]),
            ("bad_value", [b"task.failed",
                           msgpack.packb({"type": "task.failed", "data": float("nan")})]),
            ("too_large", [b"task.failed", envelope("task.failed", data="x" * 70000)]),
        ]
        d = b.dealer()
        for code, frames in cases:
            reply = b.ack_publish(frames, dealer=d)
            self.assertEqual(reply[0], "REJECTED", (code, reply))
            self.assertEqual(reply[2], code, (code, reply))
            self.assertTrue(len(reply[3]) > 5, reply)  # a human-readable reason
        # the broker still serves, and nothing refused reached the plugin
        self.assertEqual(b.ack_publish([b"task.failed", envelope("task.failed", id="ok")],
                                       dealer=d), ["ACCEPTED", "ok"])
        wait_for(lambda: b.output(), what="the valid event")
        self.assertEqual([l["id"] for l in b.output()], ["ok"])
        d.close()

    def test_rejection_echoes_the_id_when_it_can_be_read(self):
        b = self.broker()
        reply = b.ack_publish([b"task.failed", envelope("task.failed", id="mine", time="bad")])
        self.assertEqual(reply[:3], ["REJECTED", "mine", "bad_attribute"])
        self.assertIn("time", reply[3])

    def test_garbage_on_the_fire_and_forget_socket_never_stops_the_broker(self):
        b = self.broker()
        pub = b.publisher()
        rnd = random.Random(7)
        for i in range(2000):
            n = rnd.randrange(1, 4)
            frames = [bytes(rnd.randrange(256) for _ in range(rnd.randrange(0, 64)))
                      for _ in range(n)]
            pub.send_multipart(frames)
        pub.send_multipart([b"task.completed", envelope("task.completed", id="after")])
        wait_for(lambda: any(l["id"] == "after" for l in b.output()), what="event after garbage")
        self.assertEqual([l["id"] for l in b.output()], ["after"])
        pub.close()
        self.assertEqual(b.stop(), 0)
        log = b.log()
        # logged at a bounded rate: 2000 refusals, at most 20 lines a window
        self.assertLessEqual(log.count("rejected a"), 40)
        self.assertIn("rejected", log)
        # and counted
        self.assertRegex(log, r"totals: 1 accepted, 2000 rejected")

    def test_oversized_frame_beyond_the_hard_cap_only_costs_that_connection(self):
        b = self.broker()
        pub = b.publisher()
        pub.send_multipart([b"task.failed", b"\x00" * (1 << 20)])  # 16x the limit
        pub.close()
        reply = b.ack_publish([b"task.failed", envelope("task.failed", id="still")])
        self.assertEqual(reply, ["ACCEPTED", "still"])


if __name__ == "__main__":
    evbtest.main()
