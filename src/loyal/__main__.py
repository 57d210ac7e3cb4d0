from loyal.cli import main

main()
