/* A shared object that is not an evbus plugin: no evbus_plugin_entry. */
int not_a_plugin(void);
int not_a_plugin(void)
{
    return 42;
}
