"""A third party's view: `make install` evbus into a scratch root, build
examples/plugin with only the installed header and `pkg-config
evbus-plugin`, and load the result into a real evbusd."""

import glob
import os
import shutil
import subprocess
import tempfile

import evbtest
from evbtest import envelope


class ExamplePluginTest(evbtest.TestCase):
    def test_out_of_tree_plugin_builds_from_installed_files_and_loads(self):
        root = tempfile.mkdtemp(prefix="evbtest-root-")
        self.addCleanup(shutil.rmtree, root, True)
        r = subprocess.run(["make", "-C", evbtest.BUILDDIR, "install", "DESTDIR=" + root],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        pcs = glob.glob(os.path.join(root, "**", "pkgconfig", "evbus-plugin.pc"),
                        recursive=True)
        self.assertEqual(len(pcs), 1, pcs)
        headers = glob.glob(os.path.join(root, "**", "evbus", "plugin.h"), recursive=True)
        self.assertEqual(len(headers), 1, headers)
        plugins = glob.glob(os.path.join(root, "**", "evbus", "plugins", "file.so"),
                            recursive=True)
        self.assertEqual(len(plugins), 1, "make install puts plugins in $libdir/evbus/plugins")

        # a copy of the example, so the build never sees the source tree
        src = os.path.join(root, "hello-src")
        shutil.copytree(os.path.join(evbtest.SRCDIR, "examples", "plugin"), src)
        env = dict(os.environ, PKG_CONFIG_PATH=os.path.dirname(pcs[0]))
        env.pop("CFLAGS", None)
        # --define-prefix: the .pc says /usr/local; find it under our root
        r = subprocess.run(["make", "-C", src, "PKG_CONFIG=pkg-config --define-prefix"],
                           capture_output=True, text=True, env=env)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertNotIn(evbtest.SRCDIR + "/include", r.stdout)
        so = os.path.join(src, "hello.so")
        self.assertTrue(os.path.exists(so))
        # only the entry symbol is exported
        nm = subprocess.run(["nm", "-D", "--defined-only", so], capture_output=True, text=True)
        exported = [l.split()[-1] for l in nm.stdout.splitlines() if " T " in l]
        self.assertEqual(exported, ["evbus_plugin_entry"])

        b = self.make_broker(instances=lambda b: (
            '{ name = "hi"; plugin = "%s"; topics = [ "task.*" ]; '
            'options = { greeting = "hey"; out = "%s/hello.txt"; }; }' % (so, b.dir)))
        b.start()
        self.assertEqual(b.ack_publish([b"task.completed", envelope("task.completed", id="x1")]),
                         ["ACCEPTED", "x1"])
        b.ack_publish([b"agent.stuck", envelope("agent.stuck", id="x2")])  # not subscribed
        self.assertEqual(b.ack_publish([b"task.failed", envelope("task.failed", id="x3")])[0],
                         "ACCEPTED")
        self.assertEqual(b.stop(), 0)
        with open(os.path.join(b.dir, "hello.txt")) as f:
            self.assertEqual(f.read(), "task.completed x1\ntask.failed x3\n")
        self.assertIn("[hi] hey, task.completed x1", b.log())


if __name__ == "__main__":
    evbtest.main()
