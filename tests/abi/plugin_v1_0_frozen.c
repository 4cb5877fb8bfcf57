/* stub: not written yet */
typedef int evb_stub_t;
