/* Pins the layout of the two transparent ABI structs. A failure here means
 * a change broke every plugin already built: fields may only be appended
 * (and then the sizes below grow, deliberately, with a note in
 * docs/plugin-abi.md). Offsets are for LP64 (x86_64, aarch64). */
#include <stddef.h>

#include <evbus/plugin.h>

#include "testmain.h"

#define P 8 /* pointer size on LP64 */

static void test_plugin_descriptor_layout_is_frozen(void)
{
    CU_ASSERT_EQUAL(sizeof(void *), P);
    CU_ASSERT_EQUAL(offsetof(evbus_plugin_t, struct_size), 0);
    CU_ASSERT_EQUAL(offsetof(evbus_plugin_t, abi_version), 4);
    CU_ASSERT_EQUAL(offsetof(evbus_plugin_t, flags), 8);
    CU_ASSERT_EQUAL(offsetof(evbus_plugin_t, max_in_flight), 12);
    CU_ASSERT_EQUAL(offsetof(evbus_plugin_t, tick_interval_ms), 16);
    CU_ASSERT_EQUAL(offsetof(evbus_plugin_t, reserved0), 20);
    CU_ASSERT_EQUAL(offsetof(evbus_plugin_t, name), 24);
    CU_ASSERT_EQUAL(offsetof(evbus_plugin_t, version), 24 + 1 * P);
    CU_ASSERT_EQUAL(offsetof(evbus_plugin_t, description), 24 + 2 * P);
    CU_ASSERT_EQUAL(offsetof(evbus_plugin_t, declare), 24 + 3 * P);
    CU_ASSERT_EQUAL(offsetof(evbus_plugin_t, validate), 24 + 4 * P);
    CU_ASSERT_EQUAL(offsetof(evbus_plugin_t, init), 24 + 5 * P);
    CU_ASSERT_EQUAL(offsetof(evbus_plugin_t, deliver), 24 + 6 * P);
    CU_ASSERT_EQUAL(offsetof(evbus_plugin_t, tick), 24 + 7 * P);
    CU_ASSERT_EQUAL(offsetof(evbus_plugin_t, reopen), 24 + 8 * P);
    CU_ASSERT_EQUAL(offsetof(evbus_plugin_t, shutdown), 24 + 9 * P);
    /* ABI 1.0 */
    CU_ASSERT_EQUAL(sizeof(evbus_plugin_t), 24 + 10 * P);
}

static void test_host_table_layout_is_frozen(void)
{
    /* every entry of 1.0, in order; new entries go after the last */
    static const size_t want[] = {
        offsetof(evbus_host_t, log),
        offsetof(evbus_host_t, vlog),
        offsetof(evbus_host_t, declare_option),
        offsetof(evbus_host_t, instance_name),
        offsetof(evbus_host_t, instance_disable),
        offsetof(evbus_host_t, config_has),
        offsetof(evbus_host_t, config_string),
        offsetof(evbus_host_t, config_int),
        offsetof(evbus_host_t, config_float),
        offsetof(evbus_host_t, config_count),
        offsetof(evbus_host_t, config_key),
        offsetof(evbus_host_t, config_error),
        offsetof(evbus_host_t, event_attr),
        offsetof(evbus_host_t, event_json),
        offsetof(evbus_host_t, event_data_json),
        offsetof(evbus_host_t, event_msgpack),
        offsetof(evbus_host_t, event_data_number),
        offsetof(evbus_host_t, event_data_text),
        offsetof(evbus_host_t, event_accepted_ms),
        offsetof(evbus_host_t, event_retain),
        offsetof(evbus_host_t, event_release),
        offsetof(evbus_host_t, attempt_number),
        offsetof(evbus_host_t, attempt_event),
        offsetof(evbus_host_t, attempt_retry_after),
        offsetof(evbus_host_t, attempt_reason),
        offsetof(evbus_host_t, attempt_complete),
        offsetof(evbus_host_t, free),
        offsetof(evbus_host_t, now_ms),
        offsetof(evbus_host_t, event_json_into),
        offsetof(evbus_host_t, figures), /* 1.2 */
    };
    CU_ASSERT_EQUAL(offsetof(evbus_host_t, abi_version), 0);
    CU_ASSERT_EQUAL(offsetof(evbus_host_t, struct_size), 4);
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        CU_ASSERT_EQUAL(want[i], 8 + i * P);
    /* ABI 1.0: 29 entries; 1.2 appended figures */
    CU_ASSERT_EQUAL(sizeof(evbus_host_t), 8 + 30 * P);
}

static void test_result_and_option_codes_never_change(void)
{
    CU_ASSERT_EQUAL(EVBUS_OK, 0);
    CU_ASSERT_EQUAL(EVBUS_RETRY, 1);
    CU_ASSERT_EQUAL(EVBUS_DROP, 2);
    CU_ASSERT_EQUAL(EVBUS_PENDING, 3);
    CU_ASSERT_EQUAL(EVBUS_BROKEN, 4);
    CU_ASSERT_EQUAL(EVBUS_OPT_STRING, 1);
    CU_ASSERT_EQUAL(EVBUS_OPT_INT, 2);
    CU_ASSERT_EQUAL(EVBUS_OPT_BOOL, 3);
    CU_ASSERT_EQUAL(EVBUS_OPT_FLOAT, 4);
    CU_ASSERT_EQUAL(EVBUS_OPT_DURATION, 5);
    CU_ASSERT_EQUAL(EVBUS_OPT_SIZE, 6);
    CU_ASSERT_EQUAL(EVBUS_OPT_LIST, 7);
    CU_ASSERT_EQUAL(EVBUS_OPT_GROUP, 8);
    CU_ASSERT_EQUAL(EVBUS_OPT_MAP, 9);
    CU_ASSERT_EQUAL(EVBUS_OPT_REQUIRED, 1u);
    CU_ASSERT_EQUAL(EVBUS_OPT_SECRET, 2u);
    CU_ASSERT_EQUAL(EVBUS_PLUGIN_REENTRANT, 1u);
    CU_ASSERT_EQUAL(EVBUS_LOG_ERROR, 0);
    CU_ASSERT_EQUAL(EVBUS_LOG_DEBUG, 3);
    CU_ASSERT_EQUAL(EVBUS_ABI_1_0, 0x00010000u);
    CU_ASSERT_EQUAL(EVBUS_ABI_1_2, 0x00010002u);
    CU_ASSERT_EQUAL(EVBUS_FIGURE_COUNTER, 1);
    CU_ASSERT_EQUAL(EVBUS_FIGURE_GAUGE, 2);
    CU_ASSERT_EQUAL(EVBUS_FIGURE_HISTOGRAM, 3);
}

static CU_TestInfo s_tests[] = {
    {"plugin descriptor layout is frozen",
     test_plugin_descriptor_layout_is_frozen},
    {"host table layout is frozen", test_host_table_layout_is_frozen},
    {"result and option codes never change",
     test_result_and_option_codes_never_change},
    CU_TEST_INFO_NULL};

static CU_SuiteInfo s_suites[] = {
    {"abi-layout", NULL, NULL, NULL, NULL, s_tests}, CU_SUITE_INFO_NULL};

int main(void)
{
    return evb_test_main("test_layout", s_suites);
}
