/* Shared main() for the CUnit test binaries.
 *
 *   static CU_TestInfo s_tests[] = { {"name", fn}, CU_TEST_INFO_NULL };
 *   static CU_SuiteInfo s_suites[] = { {"suite", NULL, NULL, NULL, NULL,
 *                                       s_tests}, CU_SUITE_INFO_NULL };
 *   int main(void) { return evb_test_main("test_topic", s_suites); }
 *
 * Prints CUnit's verbose report, then one summary line that tools/run-tests
 * adds up: "test_topic: 12 passed, 0 failed". Exits 1 on any failure. */
#ifndef EVB_TESTMAIN_H
#define EVB_TESTMAIN_H

#include <CUnit/Basic.h>
#include <stdio.h>

static inline int evb_test_main(const char *name, CU_SuiteInfo *suites)
{
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 2;
    if (CU_register_suites(suites) != CUE_SUCCESS) {
        fprintf(stderr, "%s: cannot register suites: %s\n", name,
                CU_get_error_msg());
        CU_cleanup_registry();
        return 2;
    }
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned run = CU_get_number_of_tests_run();
    unsigned failed = CU_get_number_of_tests_failed();
    unsigned suites_failed = CU_get_number_of_suites_failed();
    unsigned asserts_failed = CU_get_number_of_failures();
    CU_cleanup_registry();
    /* a suite whose setup failed ran none of its tests: count it failed */
    failed += suites_failed;
    printf("\n%s: %u passed, %u failed\n", name, run - (failed - suites_failed),
           failed);
    return (failed || asserts_failed) ? 1 : 0;
}

#endif
